"""Where numbers become exposition: metric definitions, collectors, rendering, the store /metrics serves."""
