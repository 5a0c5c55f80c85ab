"""imgfeat inside Orange: the add-on (``pip install 'imgfeat[orange]'``).

Its widgets live in :mod:`imgfeat.orange.widgets` (the "imgfeat" category of Orange's canvas);
what they do without Qt (paths in, vectors out through the public API; the vector cache; the
tables) lives beside them here.
"""
