module github.com/libvirt-nvram-hook/libvirt-nvram-hook

go 1.26.0

require (
	github.com/beevik/etree v1.8.1
	github.com/sirupsen/logrus v1.10.2
	golang.org/x/sys v0.50.0
	gopkg.in/ini.v1 v1.68.0
)

require github.com/hanwen/go-fuse/v2 v2.12.1
