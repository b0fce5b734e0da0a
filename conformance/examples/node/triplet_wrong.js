#!/usr/bin/env node
// triplet.js with one deliberate mistake, to show what the runner reports: a hinge of
// exactly 0 (d(i,j) - d(i,k) + margin == 0) is counted as active, so it enters num_positive
// and the denominator of batch-all's loss. The fixtures with an exact tie catch it:
//
//     python -m tftriplet_conformance --command "node conformance/examples/node/triplet_wrong.js"
'use strict';

const triplet = require('./triplet.js');

triplet.rules.active = (x) => x >= 0; // the mistake: the contract says strictly > 0
triplet.serve('triplet_wrong.js');
