#!/bin/sh
# Prints the value of each record (everything after the first TAB).
exec cut -f2-
