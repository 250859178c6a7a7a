package main

import (
	"fmt"
	"strings"
)

func cmdCompletion(e *env, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(e.stderr, "tandem completion: say which shell: bash or zsh")
		return exitUsage
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	names = append(names, "help")
	words := strings.Join(names, " ")
	switch args[0] {
	case "bash":
		fmt.Fprintf(e.stdout, `# tandem bash completion
_tandem() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "%s" -- "$cur"))
        return
    fi
    case "$prev" in
        -c|--config|--dir) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --log-level) COMPREPLY=($(compgen -W "debug info warn error" -- "$cur")); return ;;
        --log-format) COMPREPLY=($(compgen -W "auto console json" -- "$cur")); return ;;
        help) COMPREPLY=($(compgen -W "%s" -- "$cur")); return ;;
    esac
    COMPREPLY=($(compgen -W "-c --config --log-level --log-format --json --dir --latency -h" -- "$cur"))
}
complete -F _tandem tandem
`, words, words)
	case "zsh":
		fmt.Fprintf(e.stdout, `#compdef tandem
# tandem zsh completion
_tandem() {
    if (( CURRENT == 2 )); then
        compadd %s
    else
        _arguments '-c[config file]:file:_files' '--config[config file]:file:_files' \
            '--log-level[log level]:level:(debug info warn error)' \
            '--log-format[log format]:format:(auto console json)' '--json[print JSON]' \
            '--dir[demo directory]:dir:_files -/' '--latency[one-way delay]:duration:'
    fi
}
compdef _tandem tandem
`, words)
	default:
		fmt.Fprintf(e.stderr, "tandem completion: no completion for %q; use bash or zsh\n", args[0])
		return exitUsage
	}
	return exitOK
}
