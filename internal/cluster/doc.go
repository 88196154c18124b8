// Package cluster is the wire between the control plane and the nodes that
// run on their own machines (lelantos node), always over the cluster CA's
// mutual TLS (internal/clustertls):
//
//   - Remote, on the control plane, reaches a node's agent RPC and its
//     sandbox tunnel at the address the node reported, dialling it as the
//     node it claims to be, so a node cannot take over another's address;
//   - Handler, on the control plane, serves the cluster endpoint that nodes
//     report to: the node's name is the one in its certificate;
//   - Reporter, on a node, registers the node and heartbeats its report.
package cluster
