# PIL images in the code-interpreter template: Image.show() displays the image in
# the cell's results instead of trying an external viewer, and Image.save() to a
# file name also displays it, so both give a `png` result.
def _lelantos_images():
    try:
        from PIL import Image, ImageShow
    except ImportError:
        return
    from IPython.display import display

    ImageShow._viewers.clear()

    def show(self, title=None):
        display(self)

    save = Image.Image.save

    def save_and_show(self, fp, format=None, **params):
        result = save(self, fp, format, **params)
        if isinstance(fp, (str, bytes)) or hasattr(fp, "__fspath__"):
            try:
                display(self)
            except Exception:
                pass
        return result

    Image.Image.show = show
    Image.Image.save = save_and_show


_lelantos_images()
del _lelantos_images
