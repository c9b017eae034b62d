//go:build hookdeps

package main

import _ "encoding/json"
