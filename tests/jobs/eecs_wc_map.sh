#!/bin/sh
# The EECS 485 word-count mapper: split each line on space, TAB, [ and ]
# (empty pieces included, so an empty line is one empty word), lower-case,
# emit word<TAB>1.
exec awk -F'[][ \t]' '{ if (NF == 0) print "\t1"; for (i = 1; i <= NF; i++) print tolower($i) "\t1" }'
