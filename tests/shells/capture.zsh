#!/usr/bin/env zsh
# Prints the completions zsh offers for the command line "$1" (completion
# functions from $COMPDIR), one per line: a zsh under zpty, whose compadd
# prints the matches instead of adding them.
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
local line
setopt rcquotes
() {
    zpty -w z source $1
    repeat 4; do
        zpty -r z line
        [[ $line == ok* ]] && return
    done
    echo 'cannot start zsh for completion' >&2
    exit 2
} =( <<< '
PROMPT=
fpath=($COMPDIR $fpath)
autoload -U compinit
compinit -u -d $TMPDIR/zcompdump
bindkey ''^M'' undefined
bindkey ''^J'' undefined
bindkey ''^I'' complete-word
null-line () { echo -E - $''\0'' }
compprefuncs=( null-line )
comppostfuncs=( null-line exit )
zstyle '':completion:*'' list-grouped false
zstyle '':completion:*'' insert-tab false
compadd () {
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
        builtin compadd "$@"
        return $?
    fi
    typeset -a __hits
    builtin compadd -A __hits "$@"
    local ret=$?
    (( $#__hits )) && print -rl -- $__hits
    return $ret
}
echo ok')
zpty -w z "$1"$'\t'
integer tog=0
while zpty -r z; do :; done | while IFS= read -r line; do
    if [[ $line == *$'\0\r' ]]; then
        (( tog++ )) && exit 0 || continue
    fi
    (( tog )) && print -r -- "${line%$'\r'}"
done
exit 2
