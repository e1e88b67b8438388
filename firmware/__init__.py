"""The board side: it runs on the ZC706's own Python, with the standard library and numpy only.

``MIN_PYTHON`` is the oldest Python the agent runs on (3.8: PetaLinux 2021.1's, by its Yocto
release; not checked on a board):
``tests/test_firmware_python.py`` holds every module to it, ``shiftadd deploy`` checks the board
against it before uploading anything.
"""

MIN_PYTHON = (3, 8)
