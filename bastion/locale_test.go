package bastion

import "testing"

func TestSafeLocale(t *testing.T) {
	for v, want := range map[string]bool{
		"": true, "C": true, "POSIX": true, "C.UTF-8": true, "C.utf8": true, "en_US.UTF-8": true, "de_DE.utf8@euro": true,
		"sr_RS.UTF-8@latin": true, "zh_TW.UTF-8": true,
		"zh_TW": false, "zh_TW.BIG5": false, "zh_TW.big5": false, "zh_CN.GBK": false, "zh_CN.GB18030": false, "ja_JP.SJIS": false,
		"en_US": false, "en_US.ISO-8859-1": false, "/tmp/x.UTF-8": false, "../x.UTF-8": false, "en_US.UTF-8/..": false,
		"en_US.UTF-8@": true, "en_US.UTF-8@a/b": false, "en US.UTF-8": false, "en_US_x.UTF-8": false, ".UTF-8": false,
		"en_US.UTF-16": false, "en_US.utf-8-x": false,
	} {
		if got := safeLocale(v); got != want {
			t.Errorf("safeLocale(%q) = %v, want %v", v, got, want)
		}
	}
}
