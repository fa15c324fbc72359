package resume

import "github.com/edgeworks/edge/edge"

// byChannel returns the indexes of pubs grouped by channel: one group per
// channel, in the order of each channel's first publication, and within a
// group in the order of pubs.
func byChannel(pubs []edge.Publication) [][]int {
	if len(pubs) == 1 {
		return [][]int{{0}}
	}
	at := make(map[string]int, len(pubs))
	var groups [][]int
	for i, p := range pubs {
		g, ok := at[p.Channel]
		if !ok {
			g = len(groups)
			at[p.Channel] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}
