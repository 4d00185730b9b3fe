package main

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/parleyim/parley/client"
)

// chatHistory is how many earlier messages chat shows when it starts.
const chatHistory = 200

func (a *app) chatCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "chat USERNAME",
		Short: "Chat with an account in a terminal UI",
		Long: `Chat opens a terminal UI for the conversation with USERNAME: the history
scrolls above an input line, new messages arrive live, and your own messages
show their delivery state (sending, sent, failed). Messages from other people
are received and stored too, and announced on the status line.

Keys: enter sends, pgup/pgdn and up/down scroll, esc or ctrl+c quits.
Chat needs a terminal; scripts use send and receive.`,
		Example: `  parley chat bob`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			in, inOK := a.stdin.(*os.File)
			out, outOK := a.stdout.(*os.File)
			if !inOK || !outOK || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
				return errNotTerminal
			}
			c, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return runChat(cmd.Context(), c, argv[0], in, out)
		},
	}
}

var errNotTerminal = errors.New("chat needs a terminal; use 'parley send' and 'parley receive' in scripts")

// runChat runs the chat UI until the user quits, with the receive stream
// feeding it in the background.
func runChat(ctx context.Context, c *client.Client, peer string, in, out *os.File) error {
	history, err := c.History(ctx, peer, chatHistory, time.Time{})
	if err != nil {
		return err
	}
	// Sends run on ctx (cancelled only by a signal), not on the UI's
	// context: a message typed just before quitting still goes out, and
	// the UI waits for it below.
	var sends sync.WaitGroup
	send := func(text string) (*client.Message, error) {
		sends.Add(1)
		defer sends.Done()
		return c.Send(ctx, peer, text)
	}
	// The SDK normalises names in every call; the model compares them
	// with arriving messages, so it needs the normal form too.
	name, err := client.NormalizeUsername(peer)
	if err != nil {
		return err
	}
	m := newChatModel(c.Username(), name, history, send)

	uiCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(uiCtx), tea.WithInput(in), tea.WithOutput(out))
	var recv sync.WaitGroup
	recv.Add(1)
	go func() {
		defer recv.Done()
		err := c.Receive(uiCtx, client.ReceiveOptions{Follow: true}, func(e client.Event) error {
			p.Send(eventMsg(e))
			return nil
		})
		p.Send(receiveEndedMsg{err})
	}()
	_, err = p.Run()
	cancel()
	recv.Wait()
	sends.Wait()
	if errors.Is(err, tea.ErrInterrupted) || (errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil) {
		return nil // interrupted by a signal: a normal way to leave
	}
	return err
}
