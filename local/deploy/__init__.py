"""The local stack deployed into the emulator without the Pulumi CLI: the program under Pulumi's mock engine
(``mock_engine.py``), one creator per resource type (``resources/``), and read-only views of what the
emulator then holds (``inspection.py``)."""
