// Bundles index.js with the SDK's TypeScript sources from the folder above,
// resolving every package (react-native included) from this folder only, so
// the bundle holds one copy of React Native.
const path = require('path');
const { getDefaultConfig, mergeConfig } = require('@react-native/metro-config');

const sdk = path.resolve(__dirname, '..');
const escape = (p) => p.replace(/[/\\^$*+?.()|[\]{}]/g, '\\$&');

module.exports = mergeConfig(getDefaultConfig(__dirname), {
  watchFolders: [sdk],
  resolver: {
    extraNodeModules: { 'hotpatch-react-native': sdk },
    nodeModulesPaths: [path.resolve(__dirname, 'node_modules')],
    blockList: [
      new RegExp(`^${escape(path.join(sdk, 'node_modules'))}/.*`),
      new RegExp(`^${escape(path.join(sdk, 'dist'))}/.*`),
      new RegExp(`^${escape(path.join(sdk, 'android'))}/.*`),
    ],
  },
});
