#!/bin/sh
# Sums the values of adjacent equal keys: key<TAB>total. Keys compare as
# strings ("" forces it: awk would compare "0" and "000" as numbers).
exec awk -F'\t' 'NR > 1 && ($1 "") != k { print k "\t" s; s = 0 } { k = $1 ""; s += $2 } END { if (NR > 0) print k "\t" s }'
