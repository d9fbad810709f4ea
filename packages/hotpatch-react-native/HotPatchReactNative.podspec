# The iOS side of the SDK for CocoaPods (React Native autolinking finds this file).
# Not built here: there is no Xcode on the machines that test HotPatch
# (docs/howto/react-native-sdk.md has the checklist for a real build).
require 'json'

package = JSON.parse(File.read(File.join(__dir__, 'package.json')))

Pod::Spec.new do |s|
  s.name         = 'HotPatchReactNative'
  s.version      = package['version']
  s.summary      = 'Signed, verified over-the-air updates for React Native (HotPatch SDK, iOS).'
  s.license      = package['license']
  s.authors      = 'HotPatch'
  s.homepage     = 'https://www.npmjs.com/package/hotpatch-react-native'
  s.platforms    = { :ios => '15.1' }
  s.source       = { :git => 'https://www.npmjs.com/package/hotpatch-react-native', :tag => s.version.to_s }
  s.swift_version = '5.9'

  # One module: the pure-Swift core, the module's behaviour, and the bridge.
  s.source_files = [
    'ios/HotPatchModule.{swift,m}',
    'ios/HotPatchCore/Sources/HotPatchCore/**/*.swift',
    'ios/HotPatchCore/Sources/HotPatchReactNative/**/*.swift',
  ]
  # Archives inflate with the system zlib through the CZlib module map.
  s.preserve_paths = 'ios/HotPatchCore/Sources/CZlib/*'
  s.pod_target_xcconfig = {
    'SWIFT_INCLUDE_PATHS' => '$(PODS_TARGET_SRCROOT)/ios/HotPatchCore/Sources/CZlib',
  }
  s.libraries  = 'z'
  s.frameworks = 'CryptoKit'

  s.dependency 'React-Core'
end
