"""Route controls: kill switch, token clamp, model/provider override, retry cap — stored, audited, reversible."""
