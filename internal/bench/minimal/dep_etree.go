//go:build deps || hookdeps || dep_etree

package main

import _ "github.com/beevik/etree"
