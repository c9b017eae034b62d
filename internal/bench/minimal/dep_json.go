//go:build dep_json || hookdeps

package main

import _ "encoding/json"
