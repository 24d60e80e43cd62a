#!/bin/sh
# Word count mapper: one "word<TAB>1" line per word, lower-cased, with
# punctuation other than apostrophes and hyphens stripped.
exec awk '{
  line = tolower($0)
  gsub(/[^a-z0-9'\''-]+/, " ", line)
  n = split(line, words, " ")
  for (i = 1; i <= n; i++) print words[i] "\t1"
}'
