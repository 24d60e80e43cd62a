#!/bin/sh
# Join mapper: tag each record with the file it came from, keyed by its
# first column: "id<TAB>file<TAB>rest".
exec awk -F'\t' -v file="$(basename "$GMR_INPUT_FILE" .tsv)" '{ rest = $0; sub(/^[^\t]*\t/, "", rest); print $1 "\t" file "\t" rest }'
