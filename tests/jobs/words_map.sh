#!/bin/sh
# Whitespace word mapper: word<TAB>1 per whitespace-separated word.
exec awk '{ for (i = 1; i <= NF; i++) print $i "\t1" }'
