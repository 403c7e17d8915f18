# fish completion for hutch(1).
#
# Installed as share/fish/vendor_completions.d/hutch.fish, or printed by
# `hutch completions fish`. hutch itself says what may come next
# (`hutch __complete -- WORDS...`).

function __hutch_complete
    set -l words (commandline -opc)
    set -l current (commandline -ct)
    for line in ($words[1] __complete -- $words $current 2>/dev/null)
        switch $line
            case :files
                __fish_complete_path $current
            case :commands
                complete -C -- $current
            case ':offset *'
                set -l from (math (string replace ':offset ' '' -- $line) + 1)
                complete -C -- (string join ' ' -- (string escape -- $words[$from..-1]) $current)
            case '*'
                printf '%s\n' $line
        end
    end
end

complete -c hutch -f -a '(__hutch_complete)'
