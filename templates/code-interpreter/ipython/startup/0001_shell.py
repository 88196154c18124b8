# `!command` in the code-interpreter template runs through pipes rather than a
# pseudo-terminal: output keeps plain "\n" line ends and is never lost when a quick
# command exits before the terminal is read. The exit status is in `_exit_code`.
def _lelantos_shell():
    import subprocess
    import sys

    from IPython import get_ipython

    ip = get_ipython()
    if ip is None:
        return

    def system(cmd):
        cmd = ip.var_expand(cmd, depth=1)
        p = subprocess.Popen(cmd, shell=True, executable="/bin/bash", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            import selectors

            sel = selectors.DefaultSelector()
            sel.register(p.stdout, selectors.EVENT_READ, sys.stdout)
            sel.register(p.stderr, selectors.EVENT_READ, sys.stderr)
            while sel.get_map():
                for key, _ in sel.select():
                    data = key.fileobj.read1(65536)
                    if not data:
                        sel.unregister(key.fileobj)
                        continue
                    key.data.write(data.decode("utf-8", "replace"))
                    key.data.flush()
            code = p.wait()
        except KeyboardInterrupt:
            p.kill()
            p.wait()
            raise
        ip.user_ns["_exit_code"] = code
        return code

    ip.system = system
    ip.system_piped = system


_lelantos_shell()
del _lelantos_shell
