#!/bin/sh
# Word count reducer: its input is sorted by key, so equal words are
# adjacent; print "word<TAB>total" once per word. ("" makes awk compare
# words as strings, not as numbers.)
exec awk -F'\t' '
  NR > 1 && ($1 "") != word { print word "\t" total; total = 0 }
  { word = $1 ""; total += $2 }
  END { if (NR > 0) print word "\t" total }'
