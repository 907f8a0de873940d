"""``make aws-acceptance``: the shared scenario (``local/scenario/``) on a throwaway AWS stack, with the
checks that refuse a run before anything is created, the report, and the removal of what its devices
left."""
