//go:build deps || hookdeps || dep_ini

package main

import _ "gopkg.in/ini.v1"
