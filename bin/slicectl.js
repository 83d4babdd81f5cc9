#!/usr/bin/env node
import '../dist/bundle/slicectl.mjs';
