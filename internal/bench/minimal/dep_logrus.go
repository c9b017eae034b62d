//go:build deps || hookdeps || dep_logrus

package main

import _ "github.com/sirupsen/logrus"
