-- Every MAC address the router has reported, with when it was first seen: a host seen for the
-- first time that is not in the device metadata raises one `unknown_device` alert, and only
-- once, whatever restarts come between.
CREATE TABLE network_hosts (
    mac text PRIMARY KEY,
    first_seen timestamptz NOT NULL DEFAULT now(),
    first_ip text,
    first_host_name text
);
