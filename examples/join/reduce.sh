#!/bin/sh
# Join reducer: for each id, every order joined with the customer's name.
# Values are sorted, so "orders" records come before the "users" one.
exec awk -F'\t' '
  function flush() { for (i = 1; i <= n; i++) if (name != "") print id "\t" name "\t" item[i]; n = 0; name = "" }
  ($1 "") != id { flush(); id = $1 "" }
  $2 == "orders" { item[++n] = $3 }
  $2 == "users" { name = $3 }
  END { flush() }'
