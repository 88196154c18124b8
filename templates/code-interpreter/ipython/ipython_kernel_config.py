# IPython kernel settings of the code-interpreter template: no colours (tracebacks
# reach clients as plain text) and no truncation of long sequences in text reprs.
c = get_config()  # noqa: F821
c.InteractiveShell.colors = "NoColor"
c.PlainTextFormatter.max_seq_length = 0
c.IPKernelApp.matplotlib = "inline"
