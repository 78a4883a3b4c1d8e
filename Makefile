# The two everyday commands (see README.md). Both set the machine up first.
.PHONY: run test setup stop

setup:
	@scripts/setup.sh

run: setup
	.venv/bin/clickpipe up

test:
	@scripts/setup.sh --test
	.venv/bin/pytest

stop:
	.venv/bin/clickpipe down
