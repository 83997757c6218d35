package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strconv"
	"testing"
)

// TestWriteSVG checks the chart writer: the output is well-formed XML
// (encoding/xml reads every token), labels are escaped, every measured
// contestant has one bar whose width is proportional to its value, rows
// without a value have no bar, and the same input gives the same bytes.
func TestWriteSVG(t *testing.T) {
	bars := []Bar{
		{Label: "raw", Value: 1},
		{Label: "evlog", Value: 0.5},
		{Label: "a<b & \"c\"", Value: 2.5},
		{Label: "sqlite", Value: 0.04},
		{Label: "n/a one", Note: "n/a"},
	}
	var a, b bytes.Buffer
	if err := writeSVG(&a, "1. batched <append>", "×raw & more", bars); err != nil {
		t.Fatal(err)
	}
	if err := writeSVG(&b, "1. batched <append>", "×raw & more", bars); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of the same chart differ")
	}
	dec := xml.NewDecoder(bytes.NewReader(a.Bytes()))
	var widths, values []float64
	var texts []string
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, a.Bytes())
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
			}
			if el.Name.Local != "rect" || attr(el, "class") != "bar" {
				continue
			}
			w, err1 := strconv.ParseFloat(attr(el, "width"), 64)
			v, err2 := strconv.ParseFloat(attr(el, "data-value"), 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("bar %v: width or data-value not a number", el.Attr)
			}
			widths, values = append(widths, w), append(values, v)
		case xml.CharData:
			texts = append(texts, string(el))
		}
	}
	if root != "svg" {
		t.Errorf("root element %q, want svg", root)
	}
	if len(widths) != 4 {
		t.Fatalf("%d bars, want 4 (one per measured contestant)", len(widths))
	}
	for i, w := range widths {
		if values[i] != bars[i].Value {
			t.Errorf("bar %d: data-value %v, want %v", i, values[i], bars[i].Value)
		}
		// Widths are written with one decimal: proportional within 0.1 px.
		if want := widths[0] * bars[i].Value / bars[0].Value; math.Abs(w-want) > 0.1 {
			t.Errorf("bar %d (%s): width %v, want %v (proportional to %v)", i, bars[i].Label, w, want, bars[i].Value)
		}
	}
	if widths[2] <= widths[0] || widths[2] > chartWidth-chartLabelW {
		t.Errorf("the longest bar is %v px wide: want the widest, inside the chart", widths[2])
	}
	found := false
	for _, s := range texts {
		found = found || s == "a<b & \"c\""
	}
	if !found {
		t.Errorf("the escaped label does not read back as written: %q", texts)
	}
}

func attr(el xml.StartElement, name string) string {
	for _, a := range el.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}
