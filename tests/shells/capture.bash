# Prints the completions bash offers for the command line "$1", one per
# line, from completions/gmr.bash (with bash-completion where installed, as
# an interactive shell has it).
source /usr/share/bash-completion/bash_completion 2>/dev/null
source "$COMPDIR/gmr.bash"
COMP_LINE="$1"
COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMPREPLY=()
_gmr gmr "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
