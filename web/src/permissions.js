// Which actions the current user may take on a case: the role matrix (crates/domain role.rs
// Role::may) crossed with the statuses each action needs (case.rs decide). The server decides
// in the end; the UI only offers what would be allowed.
import { inMyTree } from './orgs.js'

export const ROLE_ACTIONS = {
  admin: null, // everything
  dispatcher: ['accept', 'reject', 'dispatch', 'decide_extension', 'verify', 'close', 'escalate', 'supervise', 'merge', 'comment'],
  handler: ['claim', 'return', 'request_extension', 'reply', 'escalate', 'comment'],
  leader: ['supervise', 'comment'],
  inspector: ['comment'],
  volunteer: ['comment'],
}

const OPEN = ['reported', 'accepted', 'dispatched', 'in_progress', 'replied']

const STATUS_OK = {
  accept: (c) => c.status === 'reported',
  reject: (c) => c.status === 'reported',
  dispatch: (c) => ['accepted', 'dispatched'].includes(c.status),
  claim: (c) => c.status === 'dispatched',
  return: (c) => ['dispatched', 'in_progress'].includes(c.status),
  request_extension: (c) => ['dispatched', 'in_progress'].includes(c.status) && !c.pending_extension,
  decide_extension: (c) => OPEN.includes(c.status) && !!c.pending_extension,
  reply: (c) => c.status === 'in_progress',
  verify: (c) => c.status === 'replied',
  close: (c) => ['accepted', 'dispatched', 'in_progress', 'replied'].includes(c.status),
  escalate: (c) => ['accepted', 'dispatched', 'in_progress'].includes(c.status),
  supervise: (c) => OPEN.includes(c.status),
  merge: (c) => ['reported', 'accepted'].includes(c.status),
  comment: () => true,
}

const NEEDS_ASSIGNMENT = ['claim', 'return', 'request_extension', 'reply']

export const ALL_ACTIONS = Object.keys(STATUS_OK)

export function roleMay(role, action) {
  const list = ROLE_ACTIONS[role]
  if (list === null) return true
  return !!list && list.includes(action)
}

/** The actions `user` may take on case `c` now, in display order. */
export function allowedActions(c, user) {
  if (!c || !user) return []
  return ALL_ACTIONS.filter((a) => {
    if (!roleMay(user.role, a)) return false
    if (!STATUS_OK[a](c)) return false
    if (user.role !== 'admin' && NEEDS_ASSIGNMENT.includes(a) && !inMyTree(c.org)) return false
    if (a === 'escalate' && user.role === 'handler' && !inMyTree(c.org)) return false
    return true
  })
}

export const mayReveal = (role) => ['admin', 'dispatcher', 'handler', 'leader'].includes(role)

export const isOpen = (status) => OPEN.includes(status)

/** A role's home page. */
export function homeFor(role) {
  switch (role) {
    case 'dispatcher':
    case 'admin':
      return '/workbench'
    case 'handler':
      return '/inbox'
    case 'leader':
      return '/dashboard'
    default:
      return '/cases'
  }
}
