package main

// Placeholder imports so that go mod tidy keeps the CLI's dependencies
// while the commands are written; removed once they are used.
import (
	_ "github.com/charmbracelet/bubbles/textinput"
	_ "github.com/charmbracelet/bubbles/viewport"
	_ "github.com/charmbracelet/bubbletea"
	_ "github.com/mdp/qrterminal/v3"
	_ "github.com/spf13/cobra"
	_ "golang.org/x/term"
)

func main() {}
