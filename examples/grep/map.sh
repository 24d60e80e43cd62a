#!/bin/sh
# Grep mapper: lines matching $PATTERN (default "error", any case), stripped
# of surrounding blanks, all under one key, so that one reducer gets every
# match sorted.
exec awk -v pat="${PATTERN:-error}" 'tolower($0) ~ tolower(pat) { sub(/^[ \t]+/, ""); sub(/[ \t]+$/, ""); print "match\t" $0 }'
