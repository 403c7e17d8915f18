# bash completion for hutch(1)                             -*- shell-script -*-
#
# Installed as share/bash-completion/completions/hutch, or printed by
# `hutch completions bash`. hutch itself says what may come next
# (`hutch __complete -- WORDS...`): subcommands, options, profile, image,
# volume and sandbox names; paths, command names and the payload's own
# arguments are left to bash.

_hutch()
{
    local cur cword
    local -a words
    if declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
        # bash-completion: `--profile=cli` and `busybox:latest` stay one word.
        _get_comp_words_by_ref -n =: cur words cword
    else
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
        cur=${COMP_WORDS[COMP_CWORD]}
    fi

    local line
    local -a answer
    mapfile -t answer < <("$1" __complete -- "${words[@]:0:cword}" "$cur" 2>/dev/null)
    COMPREPLY=()
    for line in "${answer[@]}"; do
        case $line in
        :files)
            compopt -o filenames 2>/dev/null
            mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$cur")
            ;;
        :commands)
            mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -c -- "$cur")
            ;;
        ":offset "*)
            if declare -F _command_offset >/dev/null 2>&1; then
                _command_offset "${line#:offset }"
            else
                compopt -o filenames 2>/dev/null
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            fi
            return
            ;;
        *)
            line=${line%%$'\t'*}
            [[ $line == "$cur"* ]] && COMPREPLY+=("$line")
            ;;
        esac
    done
    # readline replaces only what follows the last `=` or `:` in the word.
    if [[ $cur == *[=:]* ]]; then
        local i prefix=${cur%"${cur##*[=:]}"}
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]=${COMPREPLY[i]#"$prefix"}
        done
    fi
} &&
    complete -F _hutch hutch

# ex: filetype=sh
