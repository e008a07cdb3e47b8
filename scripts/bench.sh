#!/usr/bin/env bash
echo "make bench: not built yet (issue 7)"
