// The page loads React's UMD build (window.React); this module lets ES
// modules `import React from 'react'` it through the page's import map.
const React = globalThis.React;
export default React;
export const {
  createElement, Fragment, useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore,
} = React;
