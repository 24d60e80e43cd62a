#!/bin/sh
# Top three values per key, by a secondary sort: run with
#   --sort-key 1,1 --sort-key 2,2nr
# so that each key's records arrive together (the first sort key is the
# key), largest second field first; print the first three of each key.
exec awk -F'\t' '$1 != key { key = $1; n = 0 } n++ < 3'
