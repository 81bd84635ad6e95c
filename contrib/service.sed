# Turns conf/rampart.conf (the demo run from the source tree) into the configuration
# make install puts in $(sysconfdir)/rampart: the same servers, run as a service.
# The @...@ paths are then filled in by the Makefile's rp_edit.
1i\
# Installed by make install as @rpconfdir@/rampart.conf (and rampart.conf.default, the\
# pristine copy; make install never overwrites rampart.conf). Paths are absolute, so\
# the prefix rampart runs with (-p) does not matter.
/^error_log stderr notice;$/c\
# As a service: in the background (rampart.service is Type=forking and follows the pid\
# file), logging to files the logrotate snippet rotates (USR1 reopens them), with the\
# workers and the helper running as nobody once the master has bound the listening\
# sockets and read the certificates.\
daemon on;\
user nobody;\
error_log @rplogdir@/error.log notice;
s|^pid logs/rampart\.pid;|pid @runstatedir@/rampart.pid;|
s|access_log logs/|access_log @rplogdir@/|
