#!/bin/sh
# Inverted index reducer: values arrive sorted, so each word's documents
# are adjacent and in order; print "word<TAB>doc1,doc2,..." without repeats.
exec awk -F'\t' '
  ($1 "") != word { if (NR > 1) print word "\t" docs; word = $1 ""; docs = $2; last = $2; next }
  $2 != last { docs = docs "," $2; last = $2 }
  END { if (NR > 0) print word "\t" docs }'
