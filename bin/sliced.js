#!/usr/bin/env node
import '../dist/bundle/sliced.mjs';
