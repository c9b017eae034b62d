//go:build deps || hookdeps

package main

import _ "gopkg.in/ini.v1"
