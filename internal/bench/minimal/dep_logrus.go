//go:build deps || hookdeps

package main

import _ "github.com/sirupsen/logrus"
