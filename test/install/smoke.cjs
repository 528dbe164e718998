// CommonJS entry of the install smoke test (see smoke-core.cjs).
'use strict';
const memport = require('memport');
require('./smoke-core.cjs').main(memport, __filename, 'cjs');
