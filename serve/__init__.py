"""The Panel server, its pages, session state and the command line."""
