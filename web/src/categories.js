// The case categories (crates/domain/src/category.rs); labels live in the locale files.
export const CATEGORIES = [
  'public_facilities',
  'road_traffic',
  'city_appearance',
  'greening',
  'housing_land',
  'advertising',
  'construction',
  'street_order',
  'emergency',
  'safety_hazard',
  'environment',
  'neighbour_dispute',
  'livelihood',
  'enterprise_service',
  'epidemic',
  'other',
]

export const CHANNELS = ['resident_web', 'hotline', 'grid_patrol', 'night_visit', 'door_visit', 'tower_group', 'volunteer', 'camera_alert', 'inspection', 'open311']
export const STATUSES = ['reported', 'accepted', 'dispatched', 'in_progress', 'replied', 'closed', 'rejected', 'merged']
export const OPEN_STATUSES = ['reported', 'accepted', 'dispatched', 'in_progress', 'replied']
