"""What a request is, before anything is sent: the model table (models.py, quoting the vendor's pages: the one
table of limits everything reads), building and checking a request's body (build.py), the pictures sent in it
(encoding.py: PNG/JPEG data URLs; pictures.py: how pictures are numbered "image 1", "image 2", ...), and colour
palettes (palette.py). Nothing here talks to the network or writes a file."""
