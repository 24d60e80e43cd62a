#!/bin/sh
# Inverted index mapper: "word<TAB>document" for each word of each line,
# the document being the input file's name (gmr sets GMR_INPUT_FILE).
exec awk -v doc="$(basename "$GMR_INPUT_FILE")" '{
  line = tolower($0)
  gsub(/[^a-z0-9]+/, " ", line)
  n = split(line, words, " ")
  for (i = 1; i <= n; i++) print words[i] "\t" doc
}'
