package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Bar is one bar of a chart: a contestant's ×raw (Value > 0), or a note
// instead of a bar (n/a, error).
type Bar struct {
	Label string
	Value float64
	Note  string
}

// Chart geometry (pixels).
const (
	chartWidth  = 720
	chartLabelW = 150 // the label column
	chartValueW = 70  // room right of the longest bar for its value
	chartBarH   = 18
	chartGap    = 6
	chartTop    = 40 // title and subtitle
	chartBottom = 24 // the axis note
)

// writeSVG writes a horizontal bar chart of bars to w: one row per bar,
// bar lengths proportional to Value (the longest bar, or 1.0× if longer,
// spans the plot), a dashed line at 1.0× (raw). The output depends only on
// its arguments (fixed formatting, no map iteration, no time), so the same
// numbers give the same bytes.
func writeSVG(w io.Writer, title, subtitle string, bars []Bar) error {
	plotW := float64(chartWidth - chartLabelW - chartValueW - 10)
	maxV := 1.0
	for _, b := range bars {
		maxV = max(maxV, b.Value)
	}
	scale := plotW / maxV
	height := chartTop + len(bars)*(chartBarH+chartGap) + chartBottom
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&buf, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, height)
	fmt.Fprintf(&buf, `<text x="10" y="16" font-size="14" font-weight="bold">%s</text>`+"\n", esc(title))
	fmt.Fprintf(&buf, `<text x="10" y="32" fill="#555555">%s</text>`+"\n", esc(subtitle))
	x0 := float64(chartLabelW)
	for i, b := range bars {
		y := chartTop + i*(chartBarH+chartGap)
		fmt.Fprintf(&buf, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", chartLabelW-6, y+chartBarH-5, esc(b.Label))
		if b.Value > 0 {
			wpx := b.Value * scale
			fill := "#4c78a8"
			if b.Label == "raw" {
				fill = "#9d9d9d"
			} else if strings.HasPrefix(b.Label, "evlog") {
				fill = "#e45756"
			}
			fmt.Fprintf(&buf, `<rect class="bar" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" data-value="%.4f"/>`+"\n",
				x0, y, wpx, chartBarH, fill, b.Value)
			fmt.Fprintf(&buf, `<text x="%.1f" y="%d">%s×</text>`+"\n", x0+wpx+4, y+chartBarH-5, formatRatio(b.Value))
			continue
		}
		fmt.Fprintf(&buf, `<text x="%.1f" y="%d" fill="#888888">%s</text>`+"\n", x0+4, y+chartBarH-5, esc(b.Note))
	}
	lineX := x0 + scale
	bottom := chartTop + len(bars)*(chartBarH+chartGap)
	fmt.Fprintf(&buf, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333333" stroke-dasharray="4 3"/>`+"\n",
		lineX, chartTop-4, lineX, bottom)
	fmt.Fprintf(&buf, `<text x="%.1f" y="%d" text-anchor="middle" fill="#333333">1.0× = raw</text>`+"\n", lineX, bottom+14)
	buf.WriteString("</svg>\n")
	_, err := w.Write(buf.Bytes())
	return err
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) // writes to a strings.Builder: no error
	return b.String()
}

// chartBars returns the bars of one table: ×raw for every measured row,
// the reason for the others.
func chartBars(t *Table) []Bar {
	var bars []Bar
	for _, row := range t.Rows {
		b := Bar{Label: row.Contestant, Value: row.VsRaw}
		switch {
		case row.Error != "":
			b.Value, b.Note = 0, "error"
		case row.NA != "":
			b.Value, b.Note = 0, "n/a"
		case row.VsRaw == 0:
			b.Note = "no ×raw"
		}
		bars = append(bars, b)
	}
	return bars
}

// writeCharts writes one SVG per table that has a raw row with a value
// into dir (created if needed) and records each file's path relative to
// linkBase in r.Charts, for the report's links.
func (r *Report) writeCharts(dir, linkBase string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.Charts = map[string]string{}
	for i := range r.Tables {
		t := &r.Tables[i]
		hasRaw := false
		for _, row := range t.Rows {
			hasRaw = hasRaw || (row.Contestant == "raw" && row.VsRaw > 0)
		}
		if !hasRaw {
			continue
		}
		better := "lower is better"
		if t.HigherIsBetter {
			better = "higher is better"
		}
		sub := fmt.Sprintf("×raw of the median %s (%s); n=%v, medians of %v runs", t.Unit, better, r.Config["n"], r.Config["runs"])
		var buf bytes.Buffer
		if err := writeSVG(&buf, t.Title, sub, chartBars(t)); err != nil {
			return err
		}
		name := t.ID + ".svg"
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			return err
		}
		rel, err := filepath.Rel(linkBase, filepath.Join(dir, name))
		if err != nil {
			rel = filepath.Join(dir, name)
		}
		r.Charts[t.ID] = filepath.ToSlash(rel)
	}
	return nil
}
