"""ministack, the local AWS emulator: its launcher (``launcher.py``), its own virtualenv
(``ministack_venv.py``), and the two files its interpreter runs, never imported by the project
(``ministack_boot.py``, which binds every listener to 127.0.0.1, and ``ministack_csr_shim.py``)."""
