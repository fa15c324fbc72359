package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// pollHold is the hold a long-poll subscriber asks for.
const pollHold = 25 * time.Second

// pollAnswer is the part of a long-poll answer edge-bench reads.
type pollAnswer struct {
	Messages []struct {
		Data string `json:"data"`
	} `json:"messages"`
	Cursor     string          `json:"cursor"`
	Disconnect json.RawMessage `json:"disconnect"`
}

// runPoll subscribes by long-polling: a first poll with timeout=0 joins
// and returns the cursor (ready), then each poll sends the last cursor as
// since= and holds up to pollHold.
func (s *subscriber) runPoll(ctx context.Context, ready func()) error {
	client := s.env.poll[s.id%len(s.env.poll)]
	connectCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	ans, err := s.poll(connectCtx, client, s.env.subscribeURL("http", channelName(s.channel), "transport", "poll", "timeout", "0"))
	cancel()
	if err != nil {
		return err
	}
	ready()
	for {
		u := s.env.subscribeURL("http", channelName(s.channel), "transport", "poll",
			"timeout", pollHold.String(), "limit", "1000", "since", ans.Cursor)
		if ans, err = s.poll(ctx, client, u); err != nil {
			return err
		}
		now := time.Now().UnixNano()
		for _, m := range ans.Messages {
			s.receive([]byte(m.Data), now)
		}
		if ans.Disconnect != nil {
			return fmt.Errorf("poll: edge disconnected: %s", clip(ans.Disconnect))
		}
	}
}

// poll sends one long-poll request.
func (s *subscriber) poll(ctx context.Context, client *http.Client, u string) (pollAnswer, error) {
	var ans pollAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return ans, fmt.Errorf("poll: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return ans, fmt.Errorf("poll: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return ans, fmt.Errorf("poll: %s: %s", resp.Status, clip(body))
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return ans, fmt.Errorf("poll: decode answer: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // to the end, so the connection is reused
	if ans.Cursor == "" {
		return ans, fmt.Errorf("poll: answer without a cursor")
	}
	return ans, nil
}
