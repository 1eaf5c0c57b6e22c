package accessunit

import (
	"fmt"
	"testing"
)

func TestAppendWithParamSets(t *testing.T) {
	aud, sps, pps, idr, sei := []byte{0x09, 0xf0}, []byte{0x67, 1}, []byte{0x68, 2}, []byte{0x65, 3}, []byte{0x06, 4}
	sps2 := []byte{0x67, 9}
	for _, tc := range []struct {
		name   string
		au     [][]byte
		want   [][]byte
		sameAU bool
	}{
		{"no parameter sets", [][]byte{idr}, [][]byte{sps, pps, idr}, false},
		{"after a delimiter", [][]byte{aud, sei, idr}, [][]byte{aud, sps, pps, sei, idr}, false},
		{"both in band", [][]byte{aud, sps2, pps, idr}, [][]byte{aud, sps2, pps, idr}, true},
		{"an SPS of its own follows", [][]byte{sps2, idr}, [][]byte{sps, pps, sps2, idr}, false},
	} {
		if HasParamSets(tc.au) != tc.sameAU {
			t.Errorf("%s: HasParamSets %v", tc.name, !tc.sameAU)
		}
		if tc.sameAU {
			continue
		}
		got := AppendWithParamSets(nil, tc.au, [][]byte{sps}, [][]byte{pps})
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if !Equal(Clone([][]byte{sps, pps}), [][]byte{sps, pps}) || Equal([][]byte{sps}, [][]byte{sps2}) {
		t.Error("Clone/Equal")
	}
}
